//! The hot read path: the latest bar served from memory is never older
//! than what Redis held one hot-flush cadence (the pipeline's default
//! `hot_flush_ms`, 20 ms) before the request, even when NATS misses some
//! updates; and a value gone from Redis is gone from the answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insite_query::QueryConfig;
use insite_schemas::{Bar, Finality, Interval, Symbol};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::service::start_query;
use insite_testkit::TestEnv;
use redis::AsyncCommands;

/// The pipeline's default hot-flush cadence.
const HOT_FLUSH: Duration = Duration::from_millis(20);

/// A window start well in the past of the test's minute.
const BASE: i64 = 1_699_920_000_000;

/// Updates per window: 49 provisional ones, then the final one.
const PER_WINDOW: u64 = 50;

/// Update `seq` of the bar: later updates are newer in the Redis sink's
/// order (window, final after provisional, trade count).
fn update(seq: u64) -> Bar {
    let in_window = seq % PER_WINDOW;
    Bar {
        symbol: Symbol::new("HOT").unwrap(),
        interval: Interval::MINUTE,
        window_start: BASE + (seq / PER_WINDOW) as i64 * 60_000,
        open: 10.0,
        high: 11.0,
        low: 9.0,
        close: 10.0 + in_window as f64 / 100.0,
        volume: 100 + in_window,
        vwap: 10.0,
        trades: in_window + 1,
        finality: if in_window == PER_WINDOW - 1 {
            Finality::Final
        } else {
            Finality::Provisional
        },
    }
}

/// The update number a bar's JSON carries.
fn seq_of(json: &str) -> u64 {
    let bar: Bar = serde_json::from_str(json).unwrap();
    (bar.window_start - BASE) as u64 / 60_000 * PER_WINDOW + bar.trades - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_bar_is_never_older_than_redis_by_more_than_one_hot_flush() {
    let env = TestEnv::new("query_hot");
    let js = env.prepared().await;
    let service = start_query(&env, QueryConfig::default()).await;

    // The pipeline's hot path, faster than its cadence: each update to
    // Redis (flushed), and two in three to NATS (DERIVED drops provisional
    // results when it is behind). `flushed` logs when each Redis write was
    // done.
    let flushed: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let mut sink = RedisSink::connect(&env.connections.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    let mut derived = DerivedPublisher::new(js.clone(), env.connections.nats.streams.clone(), 64);
    sink.push(HotUpdate::Bar(update(0))).unwrap();
    sink.flush().await.unwrap();
    flushed.lock().unwrap().push((Instant::now(), 0));
    let writer = {
        let flushed = flushed.clone();
        tokio::spawn(async move {
            for seq in 1..=600 {
                let bar = update(seq);
                sink.push(HotUpdate::Bar(bar.clone())).unwrap();
                sink.flush().await.unwrap();
                flushed.lock().unwrap().push((Instant::now(), seq));
                if seq % 3 != 0 {
                    derived.publish(&Derived::Bar(bar)).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            derived.flush().await.unwrap();
        })
    };

    // A client reading the latest bar as fast as it is answered.
    let http = reqwest::Client::new();
    let url = service.url("/v1/symbols/HOT/bar?interval=1m");
    let mut reads = Vec::new();
    while !writer.is_finished() {
        let asked = Instant::now();
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let source = response.headers()["x-insite-source"]
            .to_str()
            .unwrap()
            .to_owned();
        reads.push((asked, seq_of(&response.text().await.unwrap()), source));
    }
    writer.await.unwrap();

    let flushed = flushed.lock().unwrap().clone();
    let mut from_memory = 0;
    for (asked, seq, source) in &reads {
        // The newest update Redis held one cadence before the request.
        let held = flushed
            .iter()
            .filter(|(at, _)| *at + HOT_FLUSH <= *asked)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        assert!(
            *seq >= held,
            "answer {seq} (from {source}) is older than update {held}, which Redis held {HOT_FLUSH:?} before the request"
        );
        from_memory += usize::from(source == "memory");
    }
    // The answers did come from memory (the path under test), most of them.
    assert!(
        from_memory * 2 > reads.len(),
        "{from_memory} of {} answers from memory",
        reads.len()
    );

    // Gone from Redis: within a sweep, gone from the answers (ClickHouse has
    // no bar of HOT either, so 404).
    let mut redis = env.redis().await;
    let key = insite_sinks::redis::RedisKeys::new(&env.connections.redis.key_prefix)
        .bar(&Symbol::new("HOT").unwrap(), Interval::MINUTE);
    let _: () = redis.del(&key).await.unwrap();
    let deleted = Instant::now();
    let status = loop {
        let status = http.get(&url).send().await.unwrap().status();
        if status == 404 || deleted.elapsed() > Duration::from_secs(5) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert_eq!(status, 404, "a key deleted from Redis is still served");
    service.stop().await;
}
