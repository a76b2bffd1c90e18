//! What a stream holds, read back: every message of a stream ([`read_all`])
//! and the events in them ([`decode_events`]).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use insite_ingest::Event;
use insite_schemas::wire::{self, Inbound};

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its subject.
    pub subject: String,
    /// Its headers (the first value of each).
    pub headers: HashMap<String, String>,
    /// Its payload.
    pub payload: bytes::Bytes,
}

impl Stored {
    /// The header `name`, if the message has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Every message of `stream`, in stream order.
///
/// # Panics
/// If the stream cannot be read within 30 s a message.
pub async fn read_all(js: &jetstream::Context, stream: &str) -> Vec<Stored> {
    let mut stream = js.get_stream(stream).await.expect("the stream");
    let count = stream
        .info()
        .await
        .expect("the stream's info")
        .state
        .messages as usize;
    if count == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("a consumer of the stream");
    let mut messages = consumer
        .messages()
        .await
        .expect("the stream's messages")
        .take(count);
    let mut out = Vec::with_capacity(count);
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await
        .expect("the next message within 30 s")
    {
        let message = message.expect("a message");
        let headers = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.first().map(|v| v.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        out.push(Stored {
            subject: message.subject.to_string(),
            headers,
            payload: message.payload.clone(),
        });
    }
    out
}

/// The events in `messages`, checking that each has its message id.
///
/// # Panics
/// If a message has no `Nats-Msg-Id` or does not decode.
pub fn decode_events(messages: &[Stored]) -> Vec<Event> {
    let mut events = Vec::new();
    for m in messages {
        assert!(
            m.header(wire::MSG_ID_HEADER).is_some(),
            "no msg id on {}",
            m.subject
        );
        let inbound = wire::decode_inbound(m.header(wire::SCHEMA_HEADER), &m.payload)
            .unwrap_or_else(|e| panic!("decoding the message on {}: {e}", m.subject));
        match inbound {
            Inbound::Trades(v) => events.extend(v.into_iter().map(Event::Trade)),
            Inbound::Quotes(v) => events.extend(v.into_iter().map(Event::Quote)),
            Inbound::Posts(v) => events.extend(v.into_iter().map(Event::Post)),
        }
    }
    events
}

/// Publishes each of `trades` as a message of its own on its symbol's
/// subject, in order, awaiting every ack (with its stable message id, as
/// ingest does).
///
/// # Panics
/// If a publish fails.
pub async fn publish_trades(
    js: &jetstream::Context,
    streams: &insite_schemas::config::StreamsConfig,
    trades: &[insite_schemas::Trade],
) {
    let schema = wire::schema_of::<insite_schemas::Trade>().to_string();
    let mut acks = Vec::new();
    for trade in trades {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(wire::SCHEMA_HEADER, schema.as_str());
        headers.insert(
            wire::MSG_ID_HEADER,
            insite_schemas::msgid::trade_msg_id(trade).as_str(),
        );
        let subject = streams.subject(&insite_schemas::subjects::trades(&trade.symbol));
        let payload = wire::encode(trade).expect("encoding a trade");
        acks.push(
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .expect("publishing a trade"),
        );
        if acks.len() >= 256 {
            for ack in acks.drain(..) {
                ack.await.expect("a publish ack");
            }
        }
    }
    for ack in acks {
        ack.await.expect("a publish ack");
    }
}
