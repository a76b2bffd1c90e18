//! The whole dataflow against from-scratch reference computations in plain
//! Rust, over random event sets (proptest), shuffled arrival within the
//! allowed lateness, and 1, 2 and 4 workers; plus late events.

// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use insite_operators::sentiment::author_weight;
use insite_operators::vader::SentimentAnalyzer;
use insite_operators::{build_dataflow, captured, OperatorsConfig};
use insite_schemas::{
    Alert, AlertKind, Bar, Finality, Interval, LateEvent, Post, SentimentWindow, SourceName,
    Symbol, TimestampMs, Trade, Trending,
};
use proptest::prelude::*;
use timely::dataflow::operators::{Capture, Input};

const BASE: TimestampMs = 1_700_000_000_000;
const SYMBOLS: [&str; 4] = ["AAA", "BBB", "CCC", "BRK.B"];
const WORDS: [&str; 16] = [
    "great",
    "terrible",
    "bullish",
    "bearish",
    "moon",
    "not",
    "very",
    "good",
    "bad",
    "but",
    "calls",
    "puts",
    "meh",
    "!!!",
    "LOL",
    "downgrade",
];

/// One input event with the watermark (timely time) it is read at.
#[derive(Debug, Clone)]
enum Event {
    Trade(Trade),
    Post(Post),
}

impl Event {
    fn ts(&self) -> TimestampMs {
        match self {
            Event::Trade(t) => t.ts,
            Event::Post(p) => p.ts,
        }
    }
}

/// What a run produced, normalised: finals sorted.
#[derive(Debug, Clone, PartialEq, Default)]
struct Results {
    bars: Vec<Bar>,
    sentiment: Vec<SentimentWindow>,
    trending: Vec<Trending>,
    alerts: Vec<Alert>,
    late: Vec<LateEvent>,
    scored: Vec<(String, Vec<Symbol>, f64)>,
}

fn sort_results(r: &mut Results) {
    let key = |s: &Symbol, i: Interval, w: TimestampMs| (s.clone(), i, w);
    r.bars.sort_by(|a, b| {
        key(&a.symbol, a.interval, a.window_start).cmp(&key(&b.symbol, b.interval, b.window_start))
    });
    r.sentiment.sort_by(|a, b| {
        key(&a.symbol, a.interval, a.window_start).cmp(&key(&b.symbol, b.interval, b.window_start))
    });
    r.trending.sort_by_key(|t| (t.interval, t.window_start));
    r.alerts.sort_by(|a, b| {
        (key(&a.symbol, a.interval, a.window_start), a.kind)
            .cmp(&(key(&b.symbol, b.interval, b.window_start), b.kind))
    });
    r.late
        .sort_by(|a, b| (&a.event_id, a.ts, a.watermark).cmp(&(&b.event_id, b.ts, b.watermark)));
    r.scored.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Runs the dataflow on `workers` workers; events (in arrival order, each
/// with its read watermark) are spread round-robin over the workers' inputs.
/// Also checks the time contract: finals at exactly their window's end.
fn run(workers: usize, events: &[(Event, TimestampMs)], config: &OperatorsConfig) -> Results {
    let events = Arc::new(events.to_vec());
    let config = config.clone();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let (mut trades_in, mut posts_in, probes) = worker.dataflow::<TimestampMs, _, _>(|scope| {
            let (trades_in, trades) = scope.new_input::<Vec<Trade>>();
            let (posts_in, posts) = scope.new_input::<Vec<Post>>();
            let out = build_dataflow(trades, posts, &config);
            (
                trades_in,
                posts_in,
                (
                    out.bars.capture(),
                    out.sentiment.capture(),
                    out.trending.capture(),
                    out.alerts.capture(),
                    out.late.capture(),
                    out.scored_posts.capture(),
                ),
            )
        });
        let start = events.first().map_or(0, |(_, t)| *t);
        trades_in.advance_to(start);
        posts_in.advance_to(start);
        for (i, (event, t)) in events.iter().enumerate() {
            if *t > *trades_in.time() {
                trades_in.advance_to(*t);
                posts_in.advance_to(*t);
                worker.step();
            }
            if i % peers == index {
                match event {
                    Event::Trade(trade) => trades_in.send(trade.clone()),
                    Event::Post(post) => posts_in.send(post.clone()),
                }
            }
        }
        drop(trades_in);
        drop(posts_in);
        while worker.step() {}
        let (bars, sentiment, trending, alerts, late, scored) = probes;
        let mut r = Results::default();
        for (t, bar) in captured(bars) {
            if bar.finality == Finality::Final {
                assert_eq!(
                    t,
                    bar.interval.window_end(bar.window_start),
                    "bar final time"
                );
                r.bars.push(bar);
            }
        }
        for (t, w) in captured(sentiment) {
            if w.finality == Finality::Final {
                assert_eq!(
                    t,
                    w.interval.window_end(w.window_start),
                    "sentiment final time"
                );
                r.sentiment.push(w);
            }
        }
        for (t, list) in captured(trending) {
            assert_eq!(
                t,
                list.interval.window_end(list.window_start),
                "trending time"
            );
            r.trending.push(list);
        }
        for (t, alert) in captured(alerts) {
            assert_eq!(
                t,
                alert.interval.window_end(alert.window_start),
                "alert time"
            );
            r.alerts.push(alert);
        }
        for (t, late) in captured(late) {
            assert_eq!(t, late.watermark);
            r.late.push(late);
        }
        for (_, (post, score)) in captured(scored) {
            r.scored.push((post.id, post.cashtags, score));
        }
        r
    })
    .expect("timely runs");
    let mut all = Results::default();
    for result in guards.join() {
        let r = result.expect("worker finished");
        all.bars.extend(r.bars);
        all.sentiment.extend(r.sentiment);
        all.trending.extend(r.trending);
        all.alerts.extend(r.alerts);
        all.late.extend(r.late);
        all.scored.extend(r.scored);
    }
    sort_results(&mut all);
    all
}

// ---------------------------------------------------------------------------
// The from-scratch reference.
// ---------------------------------------------------------------------------

fn window_start(i: Interval, ts: TimestampMs) -> TimestampMs {
    ts.div_euclid(i.millis()) * i.millis()
}

/// Windows (start, end) of size/slide holding ts, by brute force.
fn sliding_windows(size: Interval, slide: Interval, ts: TimestampMs) -> Vec<TimestampMs> {
    let mut starts = Vec::new();
    let mut s = window_start(slide, ts);
    while s + size.millis() > ts {
        starts.push(s);
        s -= slide.millis();
    }
    starts
}

fn cashtags_of(post: &Post) -> Vec<Symbol> {
    // From scratch: `$` + letter run, at a word start, upper-cased, deduped.
    if !post.cashtags.is_empty() {
        let mut out: Vec<Symbol> = Vec::new();
        for s in &post.cashtags {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        return out;
    }
    let mut out: Vec<Symbol> = Vec::new();
    for word in post.text.split_whitespace() {
        if let Some(rest) = word.strip_prefix('$') {
            let tag: String = rest
                .trim_end_matches(|c: char| c.is_ascii_punctuation())
                .to_ascii_uppercase();
            if tag.starts_with(|c: char| c.is_ascii_alphabetic()) {
                if let Ok(s) = Symbol::new(&tag) {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

fn reference(events: &[(Event, TimestampMs)], config: &OperatorsConfig) -> Results {
    let mut r = Results::default();
    let vader = SentimentAnalyzer::finance();

    // Bars.
    let mut groups: BTreeMap<(Symbol, Interval, TimestampMs), Vec<&Trade>> = BTreeMap::new();
    // One entry per late record (two records may share an id).
    let mut late_ids: Vec<String> = Vec::new();
    for (event, t) in events {
        let Event::Trade(trade) = event else { continue };
        let mut late = false;
        for &i in &config.bar_intervals {
            let s = window_start(i, trade.ts);
            if s + i.millis() > *t {
                groups
                    .entry((trade.symbol.clone(), i, s))
                    .or_default()
                    .push(trade);
            } else {
                late = true;
            }
        }
        if late {
            late_ids.push(insite_schemas::msgid::trade_msg_id(trade));
        }
    }
    for ((symbol, interval, start), trades) in groups {
        let order = |a: &Trade, b: &Trade| {
            (a.ts, &a.trade_id, &a.exchange)
                .cmp(&(b.ts, &b.trade_id, &b.exchange))
                .then(a.price.total_cmp(&b.price))
                .then(a.size.cmp(&b.size))
        };
        let open = trades.iter().copied().min_by(|a, b| order(a, b)).unwrap();
        let close = trades.iter().copied().max_by(|a, b| order(a, b)).unwrap();
        let volume: u64 = trades.iter().map(|t| t.size).sum();
        let notional: f64 = trades.iter().map(|t| t.price * t.size as f64).sum();
        r.bars.push(Bar {
            symbol,
            interval,
            window_start: start,
            open: open.price,
            high: trades.iter().map(|t| t.price).fold(f64::MIN, f64::max),
            low: trades.iter().map(|t| t.price).fold(f64::MAX, f64::min),
            close: close.price,
            volume,
            vwap: notional / volume as f64,
            trades: trades.len() as u64,
            finality: Finality::Final,
        });
    }

    // Posts: scores, sentiment, trending, lateness.
    let mut sentiment: BTreeMap<(Symbol, Interval, TimestampMs), Vec<(f64, f64)>> = BTreeMap::new();
    let t = &config.trending;
    let mut counts: BTreeMap<TimestampMs, BTreeMap<Symbol, u64>> = BTreeMap::new();
    for (event, wm) in events {
        let Event::Post(post) = event else { continue };
        let score = vader.compound(&post.text);
        let tags = cashtags_of(post);
        r.scored.push((post.id.clone(), tags.clone(), score));
        let weight = match post.author_followers {
            Some(n) => (1.0 + n as f64).ln(),
            None => 2f64.ln(),
        };
        let mut late = false;
        for symbol in &tags {
            for &i in &config.sentiment_intervals {
                let s = window_start(i, post.ts);
                if s + i.millis() > *wm {
                    sentiment
                        .entry((symbol.clone(), i, s))
                        .or_default()
                        .push((score, weight));
                } else {
                    late = true;
                }
            }
            for s in sliding_windows(t.size, t.slide, post.ts) {
                if s + t.size.millis() > *wm {
                    *counts
                        .entry(s)
                        .or_default()
                        .entry(symbol.clone())
                        .or_default() += 1;
                } else {
                    late = true;
                }
            }
        }
        if late {
            late_ids.push(insite_schemas::msgid::post_msg_id(post));
        }
    }
    for ((symbol, interval, start), items) in sentiment {
        let n = items.len() as f64;
        let score = items.iter().map(|(s, _)| s).sum::<f64>() / n;
        let wsum: f64 = items.iter().map(|(_, w)| w).sum();
        let weighted = if wsum == 0.0 {
            score
        } else {
            items.iter().map(|(s, w)| s * w).sum::<f64>() / wsum
        };
        let positive = items.iter().filter(|(s, _)| *s >= 0.05).count() as u64;
        let negative = items.iter().filter(|(s, _)| *s <= -0.05).count() as u64;
        r.sentiment.push(SentimentWindow {
            symbol,
            interval,
            window_start: start,
            posts: items.len() as u64,
            score,
            positive,
            negative,
            neutral: items.len() as u64 - positive - negative,
            weighted_score: weighted,
            finality: Finality::Final,
        });
    }
    for (&start, symbols) in &counts {
        let mut entries = Vec::new();
        for (symbol, &mentions) in symbols {
            let baseline: Vec<f64> = (1..=t.baseline_windows as i64)
                .map(|k| {
                    counts
                        .get(&(start - k * t.slide.millis()))
                        .and_then(|m| m.get(symbol))
                        .copied()
                        .unwrap_or(0) as f64
                })
                .collect();
            let z = if baseline.is_empty() {
                mentions as f64
            } else {
                let mean = baseline.iter().sum::<f64>() / baseline.len() as f64;
                let sd = (baseline
                    .iter()
                    .map(|c| (c - mean) * (c - mean))
                    .sum::<f64>()
                    / baseline.len() as f64)
                    .sqrt();
                (mentions as f64 - mean) / sd.max(1.0)
            };
            if mentions >= t.min_mentions {
                entries.push(insite_schemas::TrendingEntry {
                    symbol: symbol.clone(),
                    mentions,
                    zscore: z,
                });
            }
        }
        if entries.is_empty() {
            continue;
        }
        entries.sort_by(|a, b| {
            b.mentions
                .cmp(&a.mentions)
                .then(b.zscore.total_cmp(&a.zscore))
                .then(a.symbol.cmp(&b.symbol))
        });
        entries.truncate(t.top_n);
        r.trending.push(Trending {
            interval: t.size,
            window_start: start,
            entries,
            finality: Finality::Final,
        });
    }

    // Alerts, from the reference finals, in window order per symbol.
    let a = &config.alerts;
    let mut bars_sorted = r.bars.clone();
    bars_sorted.sort_by_key(|b| (b.symbol.clone(), b.interval, b.window_start));
    let mut history: BTreeMap<(Symbol, Interval), Vec<u64>> = BTreeMap::new();
    for bar in &bars_sorted {
        if a.price_move_intervals.contains(&bar.interval) {
            let v = bar.close / bar.open - 1.0;
            if v.abs() >= a.price_move_threshold {
                r.alerts.push(alert(
                    bar.symbol.clone(),
                    AlertKind::PriceMove,
                    bar.interval,
                    bar.window_start,
                    v,
                ));
            }
        }
        if a.volume_intervals.contains(&bar.interval) {
            let h = history
                .entry((bar.symbol.clone(), bar.interval))
                .or_default();
            let recent = &h[h.len().saturating_sub(a.volume_history)..];
            if recent.len() >= a.volume_min_history {
                let mean = recent.iter().sum::<u64>() as f64 / recent.len() as f64;
                if mean > 0.0 && bar.volume as f64 / mean >= a.volume_spike_ratio {
                    r.alerts.push(alert(
                        bar.symbol.clone(),
                        AlertKind::VolumeSpike,
                        bar.interval,
                        bar.window_start,
                        bar.volume as f64 / mean,
                    ));
                }
            }
            h.push(bar.volume);
        }
    }
    let by_key: BTreeMap<(Symbol, Interval, TimestampMs), &SentimentWindow> = r
        .sentiment
        .iter()
        .map(|w| ((w.symbol.clone(), w.interval, w.window_start), w))
        .collect();
    for w in r.sentiment.clone() {
        if !a.sentiment_intervals.contains(&w.interval) {
            continue;
        }
        if let Some(prev) = by_key.get(&(
            w.symbol.clone(),
            w.interval,
            w.window_start - w.interval.millis(),
        )) {
            let v = w.score - prev.score;
            if prev.posts >= a.sentiment_min_posts
                && w.posts >= a.sentiment_min_posts
                && v.abs() >= a.sentiment_shift_threshold
            {
                r.alerts.push(alert(
                    w.symbol.clone(),
                    AlertKind::SentimentShift,
                    w.interval,
                    w.window_start,
                    v,
                ));
            }
        }
    }

    r.late = late_ids
        .into_iter()
        .map(|id| LateEvent {
            kind: insite_schemas::EventKind::Trade,
            symbol: Symbol::new("X").unwrap(),
            ts: 0,
            watermark: 0,
            event_id: id,
        })
        .collect();
    sort_results(&mut r);
    r
}

fn alert(
    symbol: Symbol,
    kind: AlertKind,
    interval: Interval,
    window_start: TimestampMs,
    value: f64,
) -> Alert {
    Alert {
        symbol,
        kind,
        interval,
        window_start,
        value,
        threshold: 0.0,
        message: String::new(),
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Compares the dataflow's results with the reference's (floats within
/// 1e-9 relative: the reference sums in plain f64).
fn assert_matches_reference(ours: &Results, theirs: &Results) {
    assert_eq!(ours.bars.len(), theirs.bars.len(), "bar count");
    for (a, b) in ours.bars.iter().zip(&theirs.bars) {
        assert_eq!(
            (
                &a.symbol,
                a.interval,
                a.window_start,
                a.open,
                a.high,
                a.low,
                a.close,
                a.volume,
                a.trades
            ),
            (
                &b.symbol,
                b.interval,
                b.window_start,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.trades
            )
        );
        assert!(near(a.vwap, b.vwap), "vwap {} vs {}", a.vwap, b.vwap);
    }
    assert_eq!(
        ours.sentiment.len(),
        theirs.sentiment.len(),
        "sentiment count"
    );
    for (a, b) in ours.sentiment.iter().zip(&theirs.sentiment) {
        assert_eq!(
            (
                &a.symbol,
                a.interval,
                a.window_start,
                a.posts,
                a.positive,
                a.negative,
                a.neutral
            ),
            (
                &b.symbol,
                b.interval,
                b.window_start,
                b.posts,
                b.positive,
                b.negative,
                b.neutral
            )
        );
        assert!(
            near(a.score, b.score) && near(a.weighted_score, b.weighted_score),
            "{a:?} vs {b:?}"
        );
    }
    assert_eq!(ours.trending.len(), theirs.trending.len(), "trending count");
    for (a, b) in ours.trending.iter().zip(&theirs.trending) {
        assert_eq!(
            (a.interval, a.window_start, a.entries.len()),
            (b.interval, b.window_start, b.entries.len())
        );
        for (x, y) in a.entries.iter().zip(&b.entries) {
            assert_eq!((&x.symbol, x.mentions), (&y.symbol, y.mentions));
            assert!(near(x.zscore, y.zscore));
        }
    }
    let alert_keys = |r: &Results| -> Vec<_> {
        r.alerts
            .iter()
            .map(|a| (a.symbol.clone(), a.kind, a.interval, a.window_start))
            .collect()
    };
    assert_eq!(alert_keys(ours), alert_keys(theirs), "alerts");
    for (a, b) in ours.alerts.iter().zip(&theirs.alerts) {
        assert!(
            near(a.value, b.value),
            "alert value {} vs {}",
            a.value,
            b.value
        );
    }
    let late_ids = |r: &Results| {
        r.late
            .iter()
            .map(|l| l.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(late_ids(ours), late_ids(theirs), "late events");
    assert_eq!(ours.scored.len(), theirs.scored.len());
    for (a, b) in ours.scored.iter().zip(&theirs.scored) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        assert_eq!(a.2, b.2);
    }
}

// ---------------------------------------------------------------------------
// Event generation.
// ---------------------------------------------------------------------------

fn test_config() -> OperatorsConfig {
    let mut c = OperatorsConfig {
        provisional_every_ms: 0,
        ..OperatorsConfig::default()
    };
    c.trending.size = Interval::MINUTE;
    c.trending.slide = Interval::from_seconds(20).unwrap();
    c.trending.baseline_windows = 4;
    c.trending.min_mentions = 1;
    c.trending.top_n = 3;
    c.alerts.price_move_intervals = vec![Interval::SECOND, Interval::MINUTE];
    c.alerts.volume_intervals = vec![Interval::SECOND];
    c.alerts.volume_min_history = 2;
    c.alerts.volume_spike_ratio = 2.0;
    c.alerts.sentiment_intervals = vec![Interval::MINUTE];
    c.alerts.sentiment_min_posts = 1;
    c.alerts.sentiment_shift_threshold = 0.3;
    c.validate().unwrap();
    c
}

#[derive(Debug, Clone)]
struct TradeSpec {
    symbol: usize,
    offset: i64,
    price: u32,
    size: u64,
    id: Option<u16>,
}

#[derive(Debug, Clone)]
struct PostSpec {
    symbols: Vec<usize>,
    offset: i64,
    words: Vec<usize>,
    followers: Option<u64>,
    prefilled: bool,
}

fn trade_spec() -> impl Strategy<Value = TradeSpec> {
    (
        0..SYMBOLS.len(),
        0i64..150_000,
        9_000u32..11_000,
        1u64..500,
        proptest::option::weighted(0.9, 0u16..50),
    )
        .prop_map(|(symbol, offset, price, size, id)| TradeSpec {
            symbol,
            offset: offset - offset % 7, // some shared timestamps
            price,
            size,
            id,
        })
}

fn post_spec() -> impl Strategy<Value = PostSpec> {
    (
        proptest::collection::vec(0..SYMBOLS.len(), 0..3),
        0i64..150_000,
        proptest::collection::vec(0..WORDS.len(), 1..8),
        proptest::option::of(0u64..100_000),
        any::<bool>(),
    )
        .prop_map(|(symbols, offset, words, followers, prefilled)| PostSpec {
            symbols,
            offset,
            words,
            followers,
            prefilled,
        })
}

fn build_events(trades: &[TradeSpec], posts: &[PostSpec]) -> Vec<Event> {
    let mut events = Vec::new();
    for (n, t) in trades.iter().enumerate() {
        events.push(Event::Trade(Trade {
            symbol: Symbol::new(SYMBOLS[t.symbol]).unwrap(),
            ts: BASE + t.offset,
            price: f64::from(t.price) / 100.0,
            size: t.size,
            exchange: if n % 3 == 0 {
                "XNAS".into()
            } else {
                "XNYS".into()
            },
            // Ids repeat across trades so that ties fall through to price.
            trade_id: t.id.map(|i| i.to_string().into()).unwrap_or_default(),
            conditions: vec![],
        }));
    }
    for (n, p) in posts.iter().enumerate() {
        let mut text: Vec<String> = p.words.iter().map(|w| WORDS[*w].to_owned()).collect();
        for (k, s) in p.symbols.iter().enumerate() {
            let tag = if k % 2 == 0 {
                SYMBOLS[*s].to_owned()
            } else {
                SYMBOLS[*s].to_lowercase()
            };
            text.insert(k.min(text.len()), format!("${tag}"));
        }
        let cashtags = if p.prefilled {
            p.symbols
                .iter()
                .map(|s| Symbol::new(SYMBOLS[*s]).unwrap())
                .collect()
        } else {
            vec![]
        };
        events.push(Event::Post(Post {
            id: format!("p{n}"),
            source: SourceName::new("x").unwrap(),
            author: format!("a{}", n % 5),
            ts: BASE + p.offset,
            text: text.join(" "),
            cashtags,
            author_followers: p.followers,
        }));
    }
    events
}

/// Arrival order: by `ts + delay` (ties by generation order), each event
/// read at the watermark `max ts seen before it - lateness`.
fn schedule(events: &[Event], delays: &[i64], lateness: i64) -> Vec<(Event, TimestampMs)> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].ts() + delays[i % delays.len().max(1)], i));
    let mut max_seen = TimestampMs::MIN;
    let mut watermark = BASE - 10 * 60_000;
    let mut out = Vec::new();
    for i in order {
        if max_seen != TimestampMs::MIN {
            watermark = watermark.max(max_seen - lateness);
        }
        out.push((events[i].clone(), watermark));
        max_seen = max_seen.max(events[i].ts());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Disorder within the allowed lateness: nothing is late, results equal
    /// the reference, and equal the in-order run exactly, on 1, 2 and 4
    /// workers.
    #[test]
    fn matches_reference_for_any_order_within_lateness_and_any_worker_count(
        trades in proptest::collection::vec(trade_spec(), 1..120),
        posts in proptest::collection::vec(post_spec(), 0..60),
        delays in proptest::collection::vec(0i64..=2_000, 1..50),
    ) {
        let config = test_config();
        let events = build_events(&trades, &posts);
        let in_order = schedule(&events, &[0], config.allowed_lateness_ms);
        let shuffled = schedule(&events, &delays, config.allowed_lateness_ms);
        let expected = reference(&in_order, &config);
        prop_assert!(expected.late.is_empty());
        let one = run(1, &in_order, &config);
        assert_matches_reference(&one, &expected);
        let shuffled_one = run(1, &shuffled, &config);
        prop_assert_eq!(&shuffled_one, &one);
        let two = run(2, &shuffled, &config);
        prop_assert_eq!(&two, &one);
        let four = run(4, &shuffled, &config);
        prop_assert_eq!(&four, &one);
    }

    /// Disorder beyond the lateness: exactly the expected events are late,
    /// each once, and the rest still match the reference on 1 and 2 workers.
    #[test]
    fn late_events_are_exactly_the_expected_ones(
        trades in proptest::collection::vec(trade_spec(), 1..100),
        posts in proptest::collection::vec(post_spec(), 0..50),
        delays in proptest::collection::vec(prop_oneof![4 => Just(0i64), 1 => 0i64..90_000], 1..40),
    ) {
        let config = test_config();
        let events = build_events(&trades, &posts);
        let arrivals = schedule(&events, &delays, config.allowed_lateness_ms);
        let expected = reference(&arrivals, &config);
        let one = run(1, &arrivals, &config);
        assert_matches_reference(&one, &expected);
        let two = run(2, &arrivals, &config);
        prop_assert_eq!(&two, &one);
    }
}

#[test]
fn a_trade_late_for_one_second_still_counts_for_the_minute() {
    let config = test_config();
    let trade = |ts: TimestampMs, id: &str| Trade {
        symbol: Symbol::new("AAA").unwrap(),
        ts,
        price: 10.0,
        size: 1,
        exchange: "X".into(),
        trade_id: id.into(),
        conditions: vec![],
    };
    // Read at watermark BASE + 5 000: [BASE+1 000, BASE+2 000) has closed,
    // the minute has not.
    let events = vec![
        (Event::Trade(trade(BASE + 1_500, "on-time")), BASE),
        (Event::Trade(trade(BASE + 1_700, "late")), BASE + 5_000),
    ];
    let out = run(1, &events, &config);
    let ids: Vec<_> = out.late.iter().map(|l| l.event_id.as_str()).collect();
    assert_eq!(ids, ["t:AAA:X:late"]);
    assert_eq!(out.late[0].watermark, BASE + 5_000);
    let second = out
        .bars
        .iter()
        .find(|b| b.interval == Interval::SECOND)
        .unwrap();
    assert_eq!(second.trades, 1);
    let minute = out
        .bars
        .iter()
        .find(|b| b.interval == Interval::MINUTE)
        .unwrap();
    assert_eq!(minute.trades, 2);
    assert_eq!(out, reference_checked(&events, &config));
}

fn reference_checked(events: &[(Event, TimestampMs)], config: &OperatorsConfig) -> Results {
    let ours = run(2, events, config);
    assert_matches_reference(&ours, &reference(events, config));
    ours
}

#[test]
fn author_weight_is_log_followers() {
    assert_eq!(author_weight(Some(0)), 0.0);
    assert!((author_weight(None) - 2f64.ln()).abs() < 1e-15);
    assert!((author_weight(Some(99)) - 100f64.ln()).abs() < 1e-12);
}
