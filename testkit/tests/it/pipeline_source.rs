//! The pipeline's JetStream input: every message reaches the dataflow once,
//! in stream order; bad ones (whole, or the events of one beyond the
//! clock-skew bound) land in the DLQ with their reason first; an idle
//! stream gets clock ticks.

use std::time::Duration;

use async_nats::jetstream::stream;
use insite_pipeline::source::{
    consumer, run_consumer, ConsumerConfig, InputBody, InputSource, PullOptions,
};
use insite_schemas::{subjects, wire, Inbound, SourceName};
use insite_testkit::fixtures::{symbol, trade};
use insite_testkit::wait::eventually;
use insite_testkit::TestEnv;

/// When the trades happened.
const TS: i64 = 1_700_000_000_000;

#[tokio::test]
async fn decodes_good_messages_and_dead_letters_bad_ones() {
    let env = TestEnv::new("pipeline_source");
    let js = env.jetstream().await;
    let streams = env.connections.nats.streams.clone();
    for (name, subject) in [(&streams.market, "md.>"), (&streams.dlq, "insite.dlq.>")] {
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![streams.subject(subject)],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let aapl = symbol("AAPL");
    let publish = |subject: String, schema: Option<&'static str>, payload: Vec<u8>| {
        let js = js.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(schema) = schema {
                headers.insert(wire::SCHEMA_HEADER, schema);
            }
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let on_aapl = streams.subject(&subjects::trades(&aapl));
    publish(
        on_aapl.clone(),
        Some("trade.v1"),
        wire::encode(&trade("AAPL", TS, "1")).unwrap(),
    )
    .await;
    publish(on_aapl.clone(), Some("trade.v1"), b"\xc1garbage".to_vec()).await;
    publish(
        on_aapl.clone(),
        None,
        wire::encode(&trade("AAPL", TS, "2")).unwrap(),
    )
    .await;
    publish(
        on_aapl.clone(),
        Some("trade.v1"),
        wire::encode(&trade("MSFT", TS, "3")).unwrap(),
    )
    .await;
    publish(
        on_aapl.clone(),
        Some("trade.v9"),
        wire::encode(&trade("AAPL", TS, "4")).unwrap(),
    )
    .await;
    publish(
        on_aapl,
        Some("trade.v1"),
        wire::encode(&trade("AAPL", TS, "5")).unwrap(),
    )
    .await;

    let config = ConsumerConfig::default();
    let pull = consumer(&js, &streams, &config, InputSource::Market, 1)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        js.clone(),
        streams.clone(),
        pull,
        InputSource::Market,
        tx,
        stop.clone(),
        PullOptions::live(&config, 5_000, SourceName::new("test").unwrap(), None),
    ));

    // Every message, in order; the bad ones as Rejected, after their dead
    // letter was stored.
    let mut read = Vec::new();
    for _ in 0..6 {
        let input = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        read.push((input.stream_seq, input.body.clone()));
    }
    assert_eq!(
        read,
        vec![
            (
                1,
                InputBody::Events(Inbound::Trades(vec![trade("AAPL", TS, "1")]))
            ),
            (2, InputBody::Rejected),
            (3, InputBody::Rejected),
            (4, InputBody::Rejected),
            (5, InputBody::Rejected),
            (
                6,
                InputBody::Events(Inbound::Trades(vec![trade("AAPL", TS, "5")]))
            ),
        ]
    );

    // The four bad ones are in the DLQ, in order, each with its reason.
    let dlq = js.get_stream(&streams.dlq).await.unwrap();
    let mut kinds = Vec::new();
    for seq in 1..=4 {
        let message = eventually(Duration::from_secs(10), async || {
            dlq.get_raw_message(seq).await.ok()
        })
        .await
        .unwrap();
        let headers = message.headers;
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        assert!(!get(wire::DLQ_REASON_HEADER).is_empty());
        assert_eq!(get(wire::DLQ_STAGE_HEADER), "pipeline");
        assert!(get(wire::DLQ_SUBJECT_HEADER).ends_with("md.trades.AAPL"));
        kinds.push(get(wire::DLQ_KIND_HEADER));
    }
    assert_eq!(
        kinds,
        vec![
            "malformed",
            "missing_schema",
            "invalid",
            "unsupported_version"
        ]
    );

    stop.cancel();
    task.await.unwrap().unwrap();
}
