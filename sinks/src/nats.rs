//! NATS: final results on the DERIVED stream for subscribing services and
//! replay, provisional ones on core NATS subjects that no stream stores.
//!
//! | result | final (DERIVED) | provisional (not stored) |
//! |---|---|---|
//! | bar | `insite.bars.<interval>.<SYM>` | `insite.live.bars.<interval>.<SYM>` |
//! | sentiment window | `insite.sentiment.<interval>.<SYM>` | `insite.live.sentiment.<interval>.<SYM>` |
//! | trending list | `insite.trending.<interval>` | `insite.live.trending.<interval>` |
//! | alert | `insite.alerts.<SYM>` | (alerts are always final) |
//!
//! Every message is MessagePack with its `Insite-Schema` header. Final
//! results are JetStream publishes with a `Nats-Msg-Id` derived from their
//! identity (`bar:1m:AAPL:<window_start>:final`), so a result re-published
//! after a restart is dropped by JetStream's duplicate window; their acks
//! are pipelined: up to `max_in_flight` are awaited together and
//! [`DerivedPublisher::flush`] confirms them all. Provisional results (one
//! per open window every 100 ms, most of the volume) are core NATS
//! publishes, fire and forget: no ack, no id, nothing kept, so they cost the
//! DERIVED stream neither bytes nor acks. Both go out on one connection, so
//! a subscriber of `insite.>` sees them in publish order.

use std::collections::VecDeque;

use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use insite_schemas::config::{NatsConfig, StreamsConfig};
use insite_schemas::wire::{self, WireType};
use insite_schemas::{subjects, Alert, Bar, Finality, SentimentWindow, Trending};

/// NATS could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("connecting to NATS at {url}: {source}")]
pub struct ConnectError {
    /// The URL(s).
    pub url: String,
    /// The client's error.
    #[source]
    pub source: async_nats::ConnectError,
}

/// Connects to NATS: the one connect helper of every insite process. A
/// refusal the server reports later (a subject this user may not use) is
/// logged as an error; the connection stays up.
/// `nats.url` may list several seed URLs, comma-separated; the client
/// reconnects on its own. `name` is the client name the server shows
/// (`insite-pipeline`, `insite-query`, ...).
pub async fn connect(nats: &NatsConfig, name: &str) -> Result<async_nats::Client, ConnectError> {
    let client = name.to_owned();
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .event_callback(move |event| {
            let client = client.clone();
            async move { log_event(&client, event) }
        });
    if let (Some(user), Some(password)) = (&nats.user, &nats.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    let seeds: Vec<&str> = nats
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    options
        .connect(seeds.as_slice())
        .await
        .map_err(|source| ConnectError {
            url: nats.url.clone(),
            source,
        })
}

/// Logs what the server reports on a connection: a refusal (a permission
/// violation: a subject this user may not publish to or subscribe to) as
/// an error naming the subject, the connection's ups and downs as warnings
/// and information. The connection stays open after a refusal.
fn log_event(client: &str, event: async_nats::Event) {
    use async_nats::{Event, ServerError};
    match event {
        Event::ServerError(ServerError::AuthorizationViolation) => {
            tracing::error!(client, "NATS refused this client's user or password");
        }
        Event::ServerError(error) => {
            tracing::error!(client, error = %error, "NATS refused an operation");
        }
        Event::Disconnected => tracing::warn!(client, "disconnected from NATS"),
        Event::Connected => tracing::info!(client, "connected to NATS"),
        Event::ClientError(error) => tracing::warn!(client, error = %error, "NATS client error"),
        other => tracing::debug!(client, event = %other, "NATS connection event"),
    }
}

/// Errors publishing results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// A value could not be encoded (a bug).
    #[error("encoding a result: {0}")]
    Encode(#[from] insite_schemas::EncodeError),
    /// NATS refused or did not acknowledge a publish (retryable).
    #[error("publishing to {subject}: {source}")]
    Publish {
        /// The subject.
        subject: String,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
}

impl PublishError {
    fn publish(subject: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Publish {
            subject: subject.to_owned(),
            source: Box::new(source),
        }
    }
}

/// A derived result to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    /// A bar.
    Bar(Bar),
    /// A sentiment window.
    Sentiment(SentimentWindow),
    /// A trending list.
    Trending(Trending),
    /// An alert.
    Alert(Alert),
}

impl Derived {
    /// The subject it is published on (without the configured prefix): the
    /// final subject for a final result, the `insite.live.` one for a
    /// provisional result.
    pub fn subject(&self) -> String {
        let live = !self.is_final();
        match self {
            Self::Bar(b) if live => subjects::live_bars(b.interval, &b.symbol),
            Self::Bar(b) => subjects::bars(b.interval, &b.symbol),
            Self::Sentiment(s) if live => subjects::live_sentiment(s.interval, &s.symbol),
            Self::Sentiment(s) => subjects::sentiment(s.interval, &s.symbol),
            Self::Trending(t) if live => subjects::live_trending(t.interval),
            Self::Trending(t) => subjects::trending(t.interval),
            Self::Alert(a) => subjects::alerts(&a.symbol),
        }
    }

    /// Whether it is final (stored in DERIVED); alerts always are.
    pub fn is_final(&self) -> bool {
        match self {
            Self::Bar(b) => b.finality == Finality::Final,
            Self::Sentiment(s) => s.finality == Finality::Final,
            Self::Trending(t) => t.finality == Finality::Final,
            Self::Alert(_) => true,
        }
    }

    /// Its kind, as metric labels name it: `bar`, `sentiment`, `trending`
    /// or `alert`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bar(_) => "bar",
            Self::Sentiment(_) => "sentiment",
            Self::Trending(_) => "trending",
            Self::Alert(_) => "alert",
        }
    }

    /// The de-duplication id of a final result; `None` for provisional ones.
    pub fn msg_id(&self) -> Option<String> {
        match self {
            Self::Bar(b) => (b.finality == Finality::Final)
                .then(|| format!("bar:{}:{}:{}:final", b.interval, b.symbol, b.window_start)),
            Self::Sentiment(s) => (s.finality == Finality::Final).then(|| {
                format!(
                    "sentiment:{}:{}:{}:final",
                    s.interval, s.symbol, s.window_start
                )
            }),
            Self::Trending(t) => (t.finality == Finality::Final)
                .then(|| format!("trending:{}:{}:final", t.interval, t.window_start)),
            Self::Alert(a) => Some(format!(
                "alert:{}:{}:{}:{}",
                a.kind.as_str(),
                a.interval,
                a.symbol,
                a.window_start
            )),
        }
    }

    fn encode(&self) -> Result<(String, Vec<u8>), PublishError> {
        fn enc<T: WireType>(value: &T) -> Result<(String, Vec<u8>), PublishError> {
            Ok((wire::schema_of::<T>().to_string(), wire::encode(value)?))
        }
        match self {
            Self::Bar(v) => enc(v),
            Self::Sentiment(v) => enc(v),
            Self::Trending(v) => enc(v),
            Self::Alert(v) => enc(v),
        }
    }
}

/// Publishes derived results: finals to DERIVED with pipelined acks,
/// provisional ones on core NATS.
pub struct DerivedPublisher {
    /// The JetStream context (finals).
    js: jetstream::Context,
    /// Its core client (provisional results).
    client: async_nats::Client,
    /// Stream settings (subject prefix).
    streams: StreamsConfig,
    /// Acks not yet confirmed, oldest first.
    in_flight: VecDeque<(String, PublishAckFuture)>,
    /// Most acks awaited at once.
    max_in_flight: usize,
}

impl std::fmt::Debug for DerivedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedPublisher")
            .field("in_flight", &self.in_flight.len())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl DerivedPublisher {
    /// A publisher on `js` (and its client) with up to `max_in_flight`
    /// unconfirmed final publishes.
    pub fn new(js: jetstream::Context, streams: StreamsConfig, max_in_flight: usize) -> Self {
        Self {
            client: js.client(),
            js,
            streams,
            in_flight: VecDeque::new(),
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Final publishes not yet confirmed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Publishes one result. A provisional one is a core NATS publish on its
    /// `insite.live.` subject (handed to the connection, never confirmed). A
    /// final one is a JetStream publish: this waits for the oldest ack first
    /// when `max_in_flight` are outstanding, and an error may be that of an
    /// earlier publish whose ack failed.
    pub async fn publish(&mut self, result: &Derived) -> Result<(), PublishError> {
        let subject = self.streams.subject(&result.subject());
        let (schema, payload) = result.encode()?;
        let mut headers = HeaderMap::new();
        headers.insert(wire::SCHEMA_HEADER, schema.as_str());
        if !result.is_final() {
            return self
                .client
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| PublishError::publish(&subject, e));
        }
        // A failed earlier ack is reported, but does not cost this result.
        let mut earlier = Ok(());
        while self.in_flight.len() >= self.max_in_flight {
            if let Err(e) = self.confirm_oldest().await {
                earlier = earlier.and(Err(e));
            }
        }
        if let Some(id) = result.msg_id() {
            headers.insert(wire::MSG_ID_HEADER, id.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| PublishError::publish(&subject, e))?;
        self.in_flight.push_back((subject, ack));
        earlier
    }

    async fn confirm_oldest(&mut self) -> Result<(), PublishError> {
        if let Some((subject, ack)) = self.in_flight.pop_front() {
            ack.await.map_err(|e| PublishError::publish(&subject, e))?;
        }
        Ok(())
    }

    /// Waits for every outstanding ack.
    pub async fn flush(&mut self) -> Result<(), PublishError> {
        while !self.in_flight.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use insite_schemas::{Interval, Symbol, Trending};

    use super::*;

    fn bar(finality: Finality) -> Bar {
        Bar {
            symbol: Symbol::new("BRK.B").unwrap(),
            interval: Interval::MINUTE,
            window_start: 1_700_000_040_000,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1,
            vwap: 1.0,
            trades: 1,
            finality,
        }
    }

    #[test]
    fn finals_are_stored_and_provisional_results_are_live() {
        let fin = Derived::Bar(bar(Finality::Final));
        assert!(fin.is_final());
        assert_eq!(fin.subject(), "insite.bars.1m.BRK_B");
        assert_eq!(
            fin.msg_id().as_deref(),
            Some("bar:1m:BRK.B:1700000040000:final")
        );
        let live = Derived::Bar(bar(Finality::Provisional));
        assert!(!live.is_final());
        assert_eq!(live.subject(), "insite.live.bars.1m.BRK_B");
        assert_eq!(live.msg_id(), None);
        assert_eq!(live.kind(), "bar");
        let trending = Derived::Trending(Trending {
            interval: Interval::FIVE_MINUTES,
            window_start: 0,
            entries: Vec::new(),
            finality: Finality::Provisional,
        });
        assert_eq!(trending.subject(), "insite.live.trending.5m");
    }
}
