//! The publishing core against a real NATS: an ack that does not come in
//! time makes the same message (same `Nats-Msg-Id`, same payload) go out
//! again; a publish no stream takes fails the run instead of being lost.

use std::time::Duration;

use futures::StreamExt;
use insite_ingest::{OutMessage, Publisher, PublisherConfig};
use insite_schemas::wire::{SchemaId, SchemaKind, MSG_ID_HEADER};
use insite_testkit::TestEnv;

fn message(subject: String) -> OutMessage {
    OutMessage {
        subject,
        msg_id: "m-1".into(),
        schema: SchemaId::current(SchemaKind::Trade),
        payload: bytes::Bytes::from_static(b"payload"),
        events: 1,
        oldest_ts: None,
    }
}

#[tokio::test]
async fn a_timed_out_ack_is_resent_with_the_same_id() {
    let env = TestEnv::new("ingest_retry");
    let client = env.nats().await;
    // No stream here: a plain subscriber plays JetStream, ignoring the first
    // send and acknowledging the second.
    let subject = format!("{}.retry", env.connections.nats.streams.subject_prefix);
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    let responder = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(msg) = sub.next().await {
                let id = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MSG_ID_HEADER))
                    .map(|v| v.to_string());
                seen.push((id, msg.payload.clone()));
                if seen.len() == 2 {
                    let ack = r#"{"stream":"FAKE","seq":1,"duplicate":false}"#;
                    client
                        .publish(msg.reply.unwrap(), ack.into())
                        .await
                        .unwrap();
                    client.flush().await.unwrap();
                    break;
                }
            }
            seen
        })
    };
    let js = async_nats::jetstream::new(client);
    let mut publisher = Publisher::new(
        js,
        env.connections.nats.streams.clone(),
        PublisherConfig {
            ack_timeout: Duration::from_millis(300),
            retry_backoff: Duration::from_millis(10),
            max_retries: 3,
            ..PublisherConfig::default()
        },
        "test",
    );
    publisher.publish(message(subject)).await.unwrap();
    let report = publisher.flush().await.unwrap();
    assert_eq!((report.published, report.acked, report.retried), (1, 1, 1));
    let seen = tokio::time::timeout(Duration::from_secs(10), responder)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the re-send is the same message");
    assert_eq!(seen[0].0.as_deref(), Some("m-1"));
}

#[tokio::test]
async fn a_publish_no_stream_takes_fails_the_run() {
    let env = TestEnv::new("ingest_no_stream");
    let js = env.jetstream().await;
    let mut publisher = Publisher::new(
        js,
        env.connections.nats.streams.clone(),
        PublisherConfig::default(),
        "test",
    );
    let subject = format!("{}.nowhere", env.connections.nats.streams.subject_prefix);
    publisher.publish(message(subject)).await.unwrap();
    let err = publisher.flush().await.unwrap_err();
    assert!(
        matches!(err, insite_ingest::IngestError::Publish { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("m-1"), "{err}");
}
