//! Derived results on NATS: subjects, headers and de-duplication of finals.

use async_nats::jetstream::stream;
use insite_schemas::{wire, Bar, Finality, Interval};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;

#[tokio::test]
async fn finals_are_published_once_provisionals_every_time() {
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

    let stream = js.get_stream(&streams.derived).await.unwrap();
    let mut closes = Vec::new();
    for seq in 1..=3 {
        let message = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(
            message.subject.as_str(),
            streams.subject("insite.bars.1m.BRK_B")
        );
        let schema = message
            .headers
            .get(wire::SCHEMA_HEADER)
            .map(|v| v.as_str().to_owned());
        let decoded: Bar = wire::decode_result(schema.as_deref(), &message.payload).unwrap();
        closes.push((decoded.close, decoded.finality));
    }
    assert_eq!(
        closes,
        vec![
            (1.5, Finality::Provisional),
            (1.6, Finality::Provisional),
            (1.7, Finality::Final)
        ]
    );
    assert!(
        stream.get_raw_message(4).await.is_err(),
        "the repeated final was deduplicated"
    );
}
