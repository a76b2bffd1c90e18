//! WebSocket push of the query service, fed from NATS: several clients, one
//! of them deliberately slow (it never reads) and dropped with a close
//! reason while the others get every message in order.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use insite_query::config::StreamConfig;
use insite_query::QueryConfig;
use insite_schemas::{wire, Finality, Interval, Quote};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_testkit::fixtures::{bar, symbol};
use insite_testkit::service::start_query;
use insite_testkit::TestEnv;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/stream"))
        .await
        .unwrap();
    ws
}

/// The next text frame as JSON (skipping pings).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")
            .expect("stream open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn op(ws: &mut Ws, op: Value) -> Value {
    ws.send(Message::Text(op.to_string().into())).await.unwrap();
    next_json(ws).await
}

fn big_alert(i: usize) -> Derived {
    Derived::Alert(insite_schemas::Alert {
        symbol: symbol("AAPL"),
        kind: insite_schemas::AlertKind::PriceMove,
        interval: Interval::SECOND,
        window_start: 1_700_000_000_000 + i as i64 * 1_000,
        value: i as f64,
        threshold: 0.5,
        message: format!("{i:06} {}", "x".repeat(16 * 1024)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_out_to_subscribers_and_drops_a_slow_client() {
    let env = TestEnv::new("query_ws");
    let js = env.prepared().await;
    let service = start_query(
        &env,
        QueryConfig {
            stream: StreamConfig {
                client_queue: 256,
                close_timeout_ms: 120_000,
                ..StreamConfig::default()
            },
            ..QueryConfig::default()
        },
    )
    .await;

    // Bad ops are answered with an error, not a disconnect.
    let mut probe = connect(service.addr).await;
    let reply = op(
        &mut probe,
        json!({"op": "subscribe", "symbols": ["aapl"], "kinds": ["quotes"]}),
    )
    .await;
    assert_eq!(reply["type"], "error");
    assert!(
        reply["error"].as_str().unwrap().contains("symbol"),
        "{reply}"
    );
    let reply = op(&mut probe, json!({"op": "dance", "kinds": ["alerts"]})).await;
    assert_eq!(reply["type"], "error");

    // Three readers of AAPL's 1m bars and quotes, one of MSFT's bars only.
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(service.addr).await;
        let reply = op(
            &mut ws,
            json!({"op": "subscribe", "symbols": ["AAPL"], "kinds": ["bars.1m", "quotes", "alerts"]}),
        )
        .await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        assert_eq!(
            reply["topics"],
            json!([
                "insite.alerts.AAPL",
                "insite.bars.1m.AAPL",
                "md.quotes.AAPL"
            ])
        );
        readers.push(ws);
    }
    let mut other = connect(service.addr).await;
    op(
        &mut other,
        json!({"op": "subscribe", "symbols": ["MSFT"], "kinds": ["bars.1m"]}),
    )
    .await;
    // One that subscribes to all alerts and then never reads again.
    let mut slow = connect(service.addr).await;
    op(&mut slow, json!({"op": "subscribe", "kinds": ["alerts"]})).await;

    let mut publisher = DerivedPublisher::new(js.clone(), env.connections.nats.streams.clone(), 1);
    let t0 = 1_700_000_040_000;
    for update in [
        bar("AAPL", Interval::MINUTE, t0)
            .close(11.0)
            .finality(Finality::Provisional),
        bar("MSFT", Interval::MINUTE, t0).close(21.0),
        bar("AAPL", Interval::MINUTE, t0).close(12.0),
    ] {
        publisher
            .publish(&Derived::Bar(update.build()))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    // A quote straight on the market subject (as ingest publishes it).
    let nats = env.nats().await;
    let quote = Quote {
        symbol: symbol("AAPL"),
        ts: t0 + 5,
        bid: 11.9,
        bid_size: 1,
        ask: 12.1,
        ask_size: 2,
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        wire::SCHEMA_HEADER,
        wire::schema_of::<Quote>().to_string().as_str(),
    );
    nats.publish_with_headers(
        env.connections.nats.streams.subject("md.quotes.AAPL"),
        headers,
        wire::encode(&quote).unwrap().into(),
    )
    .await
    .unwrap();
    nats.flush().await.unwrap();

    for ws in &mut readers {
        let first = next_json(ws).await;
        assert_eq!(
            (first["type"].as_str(), first["data"]["close"].as_f64()),
            (Some("bar"), Some(11.0))
        );
        assert_eq!(first["data"]["finality"], "provisional");
        let second = next_json(ws).await;
        assert_eq!(second["data"]["close"], 12.0);
        assert_eq!(second["data"]["finality"], "final");
        let third = next_json(ws).await;
        assert_eq!(
            (third["type"].as_str(), third["data"]["bid"].as_f64()),
            (Some("quote"), Some(11.9))
        );
    }
    let msft = next_json(&mut other).await;
    assert_eq!(
        (
            msft["data"]["symbol"].as_str(),
            msft["data"]["close"].as_f64()
        ),
        (Some("MSFT"), Some(21.0))
    );

    // Unsubscribing stops the quotes of one reader.
    let reply = op(
        &mut readers[0],
        json!({"op": "unsubscribe", "symbols": ["AAPL"], "kinds": ["quotes"]}),
    )
    .await;
    assert_eq!(
        reply["topics"],
        json!(["insite.alerts.AAPL", "insite.bars.1m.AAPL"])
    );

    // 2,000 alerts of 16 KiB: far more than the slow client's socket
    // buffers and queue hold. The readers read them all, in order, while
    // they arrive; the slow one is dropped.
    let total = 2_000;
    let readers_done: Vec<_> = readers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for i in 0..total {
                    let m = next_json(&mut ws).await;
                    assert_eq!(m["type"], "alert");
                    assert_eq!(m["data"]["value"], i as f64);
                }
            })
        })
        .collect();
    for i in 0..total {
        publisher.publish(&big_alert(i)).await.unwrap();
    }
    publisher.flush().await.unwrap();
    for done in readers_done {
        done.await.unwrap();
    }

    // The slow client now reads: what was buffered, then the close frame
    // with the reason.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("the slow client gets its close frame")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(
        u16::from(close.code),
        insite_query::stream::SLOW_CLIENT_CLOSE_CODE
    );
    assert!(close.reason.contains("slow consumer"), "{}", close.reason);

    let metrics = reqwest::get(service.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("insite_query_ws_dropped_slow_total"),
        "{metrics}"
    );
    service.stop().await;
}
