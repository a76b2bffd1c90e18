//! The live connectors against local servers replaying recorded input: a
//! Finnhub-protocol WebSocket that drops the connection midway (the
//! connector reconnects, subscribes again and goes on; bad frames are
//! dead-lettered, not fatal), and an RSS feed served over HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use insite_ingest::source::finnhub::{FinnhubConfig, FinnhubSource};
use insite_ingest::source::rss::{RssConfig, RssSource};
use insite_ingest::source::{Backoff, SourceStats};
use insite_ingest::{Event, PublisherConfig};
use insite_schemas::Symbol;
use insite_testkit::jetstream::{decode_events, read_all};
use insite_testkit::wait::eventually;
use insite_testkit::{fixtures, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// A WebSocket server replaying `frames`: the first connection gets the
/// frames before `cut` and is then dropped without a close handshake; each
/// later connection gets the rest. Every connection must subscribe first.
async fn finnhub_server(
    frames: Vec<String>,
    cut: usize,
    symbols: usize,
) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let subscribed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (connections.clone(), subscribed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for _ in 0..symbols {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    return;
                };
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "subscribe");
                s.lock()
                    .unwrap()
                    .push(v["symbol"].as_str().unwrap().to_owned());
            }
            let range = if n == 0 { 0..cut } else { cut..frames.len() };
            for frame in &frames[range] {
                ws.send(Message::text(frame.clone())).await.unwrap();
            }
            if n == 0 {
                // Drop the TCP connection abruptly.
                ws.flush().await.unwrap();
                drop(ws);
            } else {
                tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
            }
        }
    });
    (url, connections, subscribed)
}

#[tokio::test]
async fn websocket_connector_survives_a_dropped_connection() {
    let env = TestEnv::new("ingest_ws");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    let frames: Vec<String> = fixtures::text("ingest/finnhub_frames.jsonl")
        .lines()
        .map(str::to_owned)
        .collect();
    // Expected trades, read from the recording independently: every trade
    // with a ticker symbol and at least one share.
    let mut expected = Vec::new();
    for frame in &frames {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(frame) else {
            continue;
        };
        for t in v["data"].as_array().into_iter().flatten() {
            let symbol = t["s"].as_str().unwrap();
            if Symbol::new(symbol).is_ok() && t["v"].as_f64().unwrap() >= 1.0 {
                expected.push((
                    symbol.to_owned(),
                    t["t"].as_i64().unwrap(),
                    t["p"].as_f64().unwrap().to_string(),
                    t["v"].as_f64().unwrap() as u64,
                ));
            }
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 8);

    let symbols = vec![
        Symbol::new("AAPL").unwrap(),
        Symbol::new("MSFT").unwrap(),
        Symbol::new("NVDA").unwrap(),
    ];
    let (url, connections, subscribed) = finnhub_server(frames, 5, symbols.len()).await;
    let mut config = FinnhubConfig::new(url, symbols);
    config.backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
    let stats = Arc::new(SourceStats::default());
    let shutdown = CancellationToken::new();
    let task = {
        let (js, streams, stats, shutdown) =
            (js.clone(), streams.clone(), stats.clone(), shutdown.clone());
        tokio::spawn(async move {
            insite_ingest::run_source(
                &js,
                &streams,
                FinnhubSource::new(config),
                PublisherConfig::default(),
                stats,
                shutdown,
            )
            .await
        })
    };
    eventually(Duration::from_secs(30), async || {
        SourceStats::get(&stats.events) >= 8 && SourceStats::get(&stats.rejected) >= 2
    })
    .await
    .expect("all recorded trades");
    shutdown.cancel();
    let report = task.await.unwrap().unwrap();

    assert!(connections.load(Ordering::SeqCst) >= 2, "no reconnect");
    assert!(SourceStats::get(&stats.connections) >= 2);
    assert_eq!(subscribed.lock().unwrap().len() % 3, 0);
    assert!(
        subscribed.lock().unwrap().len() >= 6,
        "not subscribed again after the reconnect"
    );
    assert_eq!(report.events, 8);
    assert_eq!(report.rejected, 2);
    assert_eq!(report.dead_lettered, 2);

    let stored = decode_events(&read_all(&js, &streams.market).await);
    let mut got: Vec<_> = stored
        .iter()
        .map(|e| match e {
            Event::Trade(t) => (t.symbol.to_string(), t.ts, t.price.to_string(), t.size),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "the two identical MSFT trades are both kept");
    let dlq = read_all(&js, &streams.dlq).await;
    assert_eq!(dlq.len(), 2);
    assert!(dlq.iter().any(|m| &m.payload[..] == b"this is not json"));
}

/// A minimal HTTP/1.1 server answering every GET with `body` (and an ETag;
/// 304 when the client sends it back). Returns the URL and a request count.
async fn rss_server(body: String) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/feed.rss", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (r, nm) = (requests.clone(), not_modified.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let (r, nm, body) = (r.clone(), nm.clone(), body.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                r.fetch_add(1, Ordering::SeqCst);
                let request = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let response = if request.contains("if-none-match: \"v1\"") {
                    nm.fetch_add(1, Ordering::SeqCst);
                    "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n"
                        .to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (url, requests, not_modified)
}

#[tokio::test]
async fn rss_connector_publishes_each_entry_once() {
    let env = TestEnv::new("ingest_rss");
    let js = env.jetstream().await;
    let streams = &env.connections.nats.streams;
    let (url, requests, not_modified) = rss_server(fixtures::text("ingest/news.rss")).await;
    let config = RssConfig::new(url, Duration::from_millis(100)).unwrap();
    let stats = Arc::new(SourceStats::default());
    let shutdown = CancellationToken::new();
    let task = {
        let (js, streams, stats, shutdown) =
            (js.clone(), streams.clone(), stats.clone(), shutdown.clone());
        tokio::spawn(async move {
            insite_ingest::run_source(
                &js,
                &streams,
                RssSource::new(config),
                PublisherConfig::default(),
                stats,
                shutdown,
            )
            .await
        })
    };
    eventually(Duration::from_secs(30), async || {
        SourceStats::get(&stats.events) >= 3 && not_modified.load(Ordering::SeqCst) >= 1
    })
    .await
    .expect("three entries and a conditional re-poll");
    shutdown.cancel();
    let report = task.await.unwrap().unwrap();
    assert!(requests.load(Ordering::SeqCst) >= 2);
    assert_eq!(report.events, 3);

    let social = read_all(&js, &streams.social).await;
    assert!(social
        .iter()
        .all(|m| m.subject == streams.subject("social.posts.news")));
    let mut posts: Vec<_> = decode_events(&social)
        .into_iter()
        .map(|e| match e {
            Event::Post(p) => p,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    posts.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = posts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["mw-20240301-001", "mw-20240301-002", "mw-20240301-003"]
    );
    assert_eq!(
        posts[0].text,
        "Apple shares rise after upbeat services outlook. Shares of Apple (AAPL) gained in early trading."
    );
    assert_eq!(posts[0].ts, 1_709_303_460_000);
    assert!(posts.iter().all(|p| p.cashtags.is_empty()));
}
