//! Throughput of the bar operator (trades/s, 1 and 2 workers) and of post
//! scoring (posts/s), plus posts/s through scoring + windowed sentiment.
//!
//! `cargo bench -p insite-operators --bench operators`

// A benchmark harness: set-up failures should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use insite_operators::bars::Bars;
use insite_operators::sentiment::{score_post, ScorePosts, SentimentWindows};
use insite_operators::vader::SentimentAnalyzer;
use insite_schemas::{Interval, Post, SourceName, Symbol, Trade};
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::ProbeHandle;

const BASE: i64 = 1_700_000_000_000;
const TRADES: usize = 400_000;
const POSTS: usize = 20_000;

fn trades(symbols: &[Symbol]) -> Vec<Trade> {
    (0..TRADES)
        .map(|i| Trade {
            symbol: symbols[i % symbols.len()].clone(),
            // 40 000 trades per second of event time: 10 s in all.
            ts: BASE + (i / 40) as i64,
            price: 100.0 + (i % 97) as f64 * 0.01,
            size: 1 + (i % 300) as u64,
            exchange: "XNAS".into(),
            trade_id: format!("{i}").into(),
            conditions: vec![],
        })
        .collect()
}

const TEXTS: [&str; 8] = [
    "$TSLA looking very bullish today, calls are printing! 🚀",
    "Not a great quarter for $AAPL, earnings miss and a downgrade. Bearish.",
    "$NVDA to the moon, this rally is incredible",
    "I don't think $AMZN is overvalued, but the guidance was weak",
    "$GME squeeze is back?? bagholders rejoice lol",
    "Sold my $MSFT puts, meh. Nothing happening.",
    "$SPY dumping hard after the Fed, terrible day",
    "Honestly $META is kind of good but not amazing",
];

fn posts() -> Vec<Post> {
    (0..POSTS)
        .map(|i| Post {
            id: format!("{i}"),
            source: SourceName::new("x").unwrap(),
            author: format!("user{}", i % 1000),
            ts: BASE + i as i64,
            text: format!("{} #{}", TEXTS[i % TEXTS.len()], i % 13),
            cashtags: vec![],
            author_followers: Some((i % 5000) as u64),
        })
        .collect()
}

/// Runs `TRADES` trades through the bar operator on `workers` workers, each
/// feeding its share, advancing the watermark every 1 000 trades.
fn run_bars(workers: usize, trades: Arc<Vec<Trade>>) {
    timely::execute(timely::Config::process(workers), move |worker| {
        let probe = ProbeHandle::new();
        let mut input = worker.dataflow::<i64, _, _>(|scope| {
            let (input, stream) = scope.new_input::<Vec<Trade>>();
            stream
                .bars(
                    &[Interval::SECOND, Interval::MINUTE, Interval::FIVE_MINUTES],
                    Duration::from_millis(100),
                )
                .probe_with(&probe);
            input
        });
        let (index, peers) = (worker.index(), worker.peers());
        input.advance_to(BASE - 2_000);
        for (chunk_no, chunk) in trades.chunks(1_000).enumerate() {
            for trade in chunk.iter().skip(index).step_by(peers) {
                input.send(trade.clone());
            }
            let watermark = chunk[0].ts - 2_000;
            if watermark > *input.time() {
                input.advance_to(watermark);
            }
            // Keep the dataflow moving without waiting on it (a probe wait
            // would also wait out the provisional cadence).
            if chunk_no % 8 == 0 {
                worker.step();
            }
        }
        drop(input);
        worker.step_while(|| !probe.done());
    })
    .unwrap()
    .join();
}

fn bars(c: &mut Criterion) {
    let symbols: Vec<Symbol> = (0..200)
        .map(|i| Symbol::new(&format!("S{i}")).unwrap())
        .collect();
    let trades = Arc::new(trades(&symbols));
    let mut group = c.benchmark_group("bars");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TRADES as u64));
    for workers in [1, 2] {
        group.bench_function(format!("{workers}_worker"), |b| {
            b.iter(|| run_bars(workers, trades.clone()))
        });
    }
    group.finish();
}

fn sentiment(c: &mut Criterion) {
    let posts = posts();
    let analyzer = SentimentAnalyzer::finance();
    let mut group = c.benchmark_group("sentiment");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(POSTS as u64));
    group.bench_function("score_posts", |b| {
        b.iter(|| {
            for post in &posts {
                black_box(score_post(analyzer, post.clone()));
            }
        })
    });
    let shared = Arc::new(posts);
    group.bench_function("dataflow_1_worker", |b| {
        b.iter(|| {
            let posts = shared.clone();
            timely::execute(timely::Config::thread(), move |worker| {
                let probe = ProbeHandle::new();
                let mut input = worker.dataflow::<i64, _, _>(|scope| {
                    let (input, stream) = scope.new_input::<Vec<Post>>();
                    stream
                        .score_posts()
                        .sentiment_windows(
                            &[Interval::MINUTE, Interval::FIVE_MINUTES],
                            Duration::from_millis(100),
                        )
                        .probe_with(&probe);
                    input
                });
                input.advance_to(BASE - 2_000);
                for chunk in posts.chunks(500) {
                    for post in chunk {
                        input.send(post.clone());
                    }
                    input.advance_to(chunk[0].ts - 2_000);
                    worker.step();
                }
                drop(input);
                worker.step_while(|| !probe.done());
            })
            .unwrap()
            .join();
        })
    });
    group.finish();
}

criterion_group!(benches, bars, sentiment);
criterion_main!(benches);
