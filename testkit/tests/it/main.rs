//! insite's integration tests: one binary, real servers from the shared
//! harness (`insite_testkit`), an isolated [`insite_testkit::TestEnv`] per
//! test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

mod clickhouse_migrations;
mod clickhouse_outage;
mod clickhouse_writer;
mod harness;
mod ingest_connectors;
mod ingest_files;
mod ingest_publisher;
mod ingest_synthetic;
mod nats_retention;
mod nats_sink;
mod pipeline_derived;
mod pipeline_e2e;
mod pipeline_flush;
mod pipeline_output;
mod pipeline_replay;
mod pipeline_source;
mod pipeline_time;
mod query_browser;
mod query_hot;
mod query_http;
mod query_immutable;
mod query_schemathesis;
mod query_vendor;
mod query_ws;
mod redis_sink;
mod security;
