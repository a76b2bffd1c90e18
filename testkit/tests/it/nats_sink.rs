//! Derived results on NATS: subjects, headers and de-duplication of finals;
//! provisional results on the live subjects, never stored.

use std::time::Duration;

use async_nats::jetstream::stream;
use futures::StreamExt;
use insite_schemas::{wire, Bar, Finality, Interval};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;

#[tokio::test]
async fn finals_are_stored_once_provisionals_go_live_every_time() {
    let env = TestEnv::new("nats_sink");
    let js = env.jetstream().await;
    let streams = env.connections.nats.streams.clone();
    js.create_stream(stream::Config {
        name: streams.derived.clone(),
        subjects: vec![streams.subject("insite.bars.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut live = env.subscribe(streams.subject("insite.live.bars.>")).await;
    let mut publisher = DerivedPublisher::new(js.clone(), streams.clone(), 2);
    // One window of BRK.B: two provisional updates, then its final bar twice.
    let window = bar("BRK.B", Interval::MINUTE, 1_700_000_040_000);
    for (finality, close) in [
        (Finality::Provisional, 1.5),
        (Finality::Provisional, 1.6),
        (Finality::Final, 1.7),
        (Finality::Final, 1.7),
    ] {
        let result = window.clone().close(close).finality(finality).build();
        publisher.publish(&Derived::Bar(result)).await.unwrap();
    }
    publisher.flush().await.unwrap();

    // Both provisional updates on the live subject, without a message id.
    for close in [1.5, 1.6] {
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("a provisional bar on the live subject")
            .unwrap();
        assert_eq!(
            message.subject.as_str(),
            streams.subject("insite.live.bars.1m.BRK_B")
        );
        let headers = message.headers.unwrap();
        assert!(headers.get(wire::MSG_ID_HEADER).is_none());
        let schema = headers.get(wire::SCHEMA_HEADER).map(|v| v.as_str());
        let decoded: Bar = wire::decode_result(schema, &message.payload).unwrap();
        assert_eq!(
            (decoded.close, decoded.finality),
            (close, Finality::Provisional)
        );
    }

    // DERIVED holds the final alone, once.
    let stream = js.get_stream(&streams.derived).await.unwrap();
    let message = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        message.subject.as_str(),
        streams.subject("insite.bars.1m.BRK_B")
    );
    let schema = message
        .headers
        .get(wire::SCHEMA_HEADER)
        .map(|v| v.as_str().to_owned());
    let decoded: Bar = wire::decode_result(schema.as_deref(), &message.payload).unwrap();
    assert_eq!((decoded.close, decoded.finality), (1.7, Finality::Final));
    assert!(
        stream.get_raw_message(2).await.is_err(),
        "the repeated final was deduplicated and nothing provisional was stored"
    );
}
