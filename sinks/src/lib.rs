//! # insite-sinks
//!
//! Where insite's results go: ClickHouse for analytics, Redis for hot reads,
//! NATS for subscribers.
//!
//! ## Layout
//! - [`clickhouse`]: connecting with connect and read timeouts
//!   ([`clickhouse::connect`]), what a failure means
//!   ([`clickhouse::classify`]: retryable, bad data, internal), applying the
//!   versioned migrations ([`clickhouse::migrate`]), the row types of every
//!   table with their table names and the table list
//!   ([`clickhouse::rows::Table`], [`clickhouse::rows::TABLES`]), one-shot
//!   inserts ([`clickhouse::insert`]) and the batching, retrying
//!   [`clickhouse::TableWriter`] (flush by size or age, confirm, back-pressure).
//! - [`redis`]: the hot-state key layout ([`redis::RedisKeys`]) and the
//!   coalescing, pipelined [`redis::RedisSink`].
//! - [`redis_conn`]: one connection type for a single Redis and a Redis
//!   Cluster ([`redis_conn::RedisConnection`]).
//! - [`nats`]: final results on the DERIVED stream, de-duplicated by a
//!   `Nats-Msg-Id` of their identity, and provisional ones on the
//!   `insite.live.>` core NATS subjects, not stored
//!   ([`nats::DerivedPublisher`]).
//! - [`streams`]: the JetStream streams with their age and byte limits,
//!   created or updated from config ([`streams::ensure_streams`]).
//! - [`retry`]: the one retry policy of the ClickHouse writers
//!   ([`retry::retry_forever`]: retryable errors forever with the capped
//!   exponential [`retry::Backoff`], back-pressure meanwhile; the others at
//!   once).

pub mod clickhouse;
pub mod nats;
pub mod redis;
pub mod redis_conn;
pub mod retry;
pub mod streams;
