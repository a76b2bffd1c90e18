//! Retention against the real NATS: every stream gets the configured age
//! and byte limits, `ensure_streams` updates them in place when the config
//! changes (an old unbounded stream is bounded, its oldest messages
//! dropped), a limit the server cannot reserve is reported as such, and
//! provisional results land in no stream.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use insite_schemas::config::StreamsConfig;
use insite_schemas::{Finality, Interval};
use insite_sinks::nats::{Derived, DerivedPublisher};
use insite_sinks::streams::{ensure_streams, Ensured, StreamSetupError};
use insite_testkit::fixtures::bar;
use insite_testkit::TestEnv;

const KIB: i64 = 1 << 10;
const MIB: i64 = 1 << 20;

/// (name, max_bytes, max_age in s) of each stream, in
/// `stream_configs` order; each must drop its oldest (`discard: old`).
async fn limits(js: &jetstream::Context, s: &StreamsConfig) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    for name in [&s.market, &s.social, &s.derived, &s.dlq] {
        let mut stream = js.get_stream(name).await.unwrap();
        let config = stream.info().await.unwrap().config.clone();
        assert_eq!(config.discard, stream::DiscardPolicy::Old, "{name}");
        out.push((name.clone(), config.max_bytes, config.max_age.as_secs()));
    }
    out
}

fn what(done: &[(String, Ensured)]) -> Vec<Ensured> {
    done.iter().map(|(_, e)| *e).collect()
}

#[tokio::test]
async fn streams_get_the_configured_limits_and_follow_config_changes() {
    let env = TestEnv::new("nats_retention_limits");
    let js = env.jetstream().await;
    let mut s = StreamsConfig {
        raw_max_bytes: 8 * MIB,
        raw_max_age_s: 3_600,
        derived_max_bytes: 4 * MIB,
        derived_max_age_s: 1_800,
        dlq_max_bytes: MIB,
        dlq_max_age_s: 7_200,
        ..env.connections.nats.streams.clone()
    };
    use Ensured::{Created, Unchanged, Updated};

    let done = ensure_streams(&js, &s).await.unwrap();
    assert_eq!(what(&done), [Created; 4]);
    assert_eq!(
        limits(&js, &s).await,
        [
            (s.market.clone(), 8 * MIB, 3_600),
            (s.social.clone(), 8 * MIB, 3_600),
            (s.derived.clone(), 4 * MIB, 1_800),
            (s.dlq.clone(), MIB, 7_200),
        ]
    );
    // Every stage calls it at start-up: with the same config, nothing to do.
    assert_eq!(
        what(&ensure_streams(&js, &s).await.unwrap()),
        [Unchanged; 4]
    );

    // A changed config updates the streams in place.
    s.raw_max_bytes = 16 * MIB;
    s.dlq_max_age_s = 86_400;
    s.dlq_max_bytes = 2 * MIB;
    let done = ensure_streams(&js, &s).await.unwrap();
    assert_eq!(what(&done), [Updated, Updated, Unchanged, Updated]);
    assert_eq!(
        limits(&js, &s).await,
        [
            (s.market.clone(), 16 * MIB, 3_600),
            (s.social.clone(), 16 * MIB, 3_600),
            (s.derived.clone(), 4 * MIB, 1_800),
            (s.dlq.clone(), 2 * MIB, 86_400),
        ]
    );
    assert_eq!(
        what(&ensure_streams(&js, &s).await.unwrap()),
        [Unchanged; 4]
    );
}

#[tokio::test]
async fn an_unbounded_stream_is_bounded_in_place_dropping_its_oldest() {
    let env = TestEnv::new("nats_retention_old");
    let js = env.jetstream().await;
    let mut s = env.connections.nats.streams.clone();
    // MARKET as an older insite left it: no byte limit, a setting of its own.
    js.create_stream(stream::Config {
        name: s.market.clone(),
        subjects: vec![s.subject("md.>")],
        max_bytes: -1,
        description: Some("made by hand".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let subject = s.subject("md.trades.AAPL");
    let payload = bytes::Bytes::from(vec![b'x'; 16 * 1024]);
    for _ in 0..64 {
        js.publish(subject.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    s.raw_max_bytes = 256 * KIB;
    let done = ensure_streams(&js, &s).await.unwrap();
    assert_eq!(done[0], (s.market.clone(), Ensured::Updated));
    let mut market = js.get_stream(&s.market).await.unwrap();
    let info = market.info().await.unwrap().clone();
    assert!(info.state.bytes <= 256 * KIB as u64, "{:?}", info.state);
    assert!(info.state.first_sequence > 1, "the oldest went first");
    assert_eq!(info.state.last_sequence, 64);
    assert_eq!(info.config.description.as_deref(), Some("made by hand"));

    // A full stream never refuses a publish: it drops its oldest.
    for _ in 0..64 {
        js.publish(subject.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let info = market.info().await.unwrap().clone();
    assert!(info.state.bytes <= 256 * KIB as u64, "{:?}", info.state);
    assert_eq!(info.state.last_sequence, 128);
}

#[tokio::test]
async fn a_limit_the_server_cannot_reserve_says_which_setting_to_change() {
    let env = TestEnv::new("nats_retention_room");
    let js = env.jetstream().await;
    let s = StreamsConfig {
        raw_max_bytes: 1 << 50,
        ..env.connections.nats.streams.clone()
    };
    let err = ensure_streams(&js, &s).await.unwrap_err();
    assert!(
        matches!(&err, StreamSetupError::NoRoom { stream, .. } if *stream == s.market),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("max_file_store"), "{text}");
    assert!(text.contains("_max_bytes"), "{text}");
}

#[tokio::test]
async fn provisional_results_are_in_no_stream() {
    let env = TestEnv::new("nats_retention_live");
    let js = env.jetstream().await;
    let s = env.connections.nats.streams.clone();
    ensure_streams(&js, &s).await.unwrap();
    let aapl = insite_schemas::Symbol::new("AAPL").unwrap();
    let m = Interval::MINUTE;
    for subject in [
        insite_schemas::subjects::live_bars(m, &aapl),
        insite_schemas::subjects::live_sentiment(m, &aapl),
        insite_schemas::subjects::live_trending(m),
    ] {
        assert!(
            js.stream_by_subject(s.subject(&subject)).await.is_err(),
            "{subject} is captured by a stream"
        );
    }
    assert_eq!(
        js.stream_by_subject(s.subject(&insite_schemas::subjects::bars(m, &aapl)))
            .await
            .unwrap(),
        s.derived
    );

    let mut publisher = DerivedPublisher::new(js.clone(), s.clone(), 8);
    let window = bar("AAPL", m, 1_700_000_040_000);
    for i in 0..50 {
        let update = window
            .clone()
            .close(10.0 + f64::from(i))
            .finality(Finality::Provisional);
        publisher
            .publish(&Derived::Bar(update.build()))
            .await
            .unwrap();
    }
    publisher
        .publish(&Derived::Bar(window.build()))
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut derived = js.get_stream(&s.derived).await.unwrap();
    assert_eq!(derived.info().await.unwrap().state.messages, 1);
}
