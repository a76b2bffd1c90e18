//! Security on by default: each user of the harness's servers (secured as
//! `insite services up` secures them) is refused what its role may not do,
//! with the server's own error, and insite reports the refusal clearly and
//! goes on.

use std::time::Duration;

use futures::StreamExt;
use insite_ingest::{OutMessage, Publisher, PublisherConfig};
use insite_local::Role;
use insite_schemas::config::Connections;
use insite_schemas::wire::{SchemaId, SchemaKind};
use insite_schemas::{Finality, Interval};
use insite_sinks::clickhouse::{classify, exception_code, ErrorClass};
use insite_sinks::redis::{HotUpdate, RedisSink, RedisSinkConfig};
use insite_testkit::fixtures::bar;
use insite_testkit::{logs, TestEnv};

fn message(subject: String, id: &str) -> OutMessage {
    OutMessage {
        subject,
        msg_id: id.into(),
        schema: SchemaId::current(SchemaKind::Trade),
        payload: bytes::Bytes::from_static(b"payload"),
        events: 1,
        oldest_ts: None,
    }
}

/// The secured harness: every test here needs users to be refused.
fn secured(env: &TestEnv) -> bool {
    if insite_testkit::servers().secrets.is_none() {
        eprintln!("skipped: {} runs against servers without users", env.id);
        return false;
    }
    true
}

#[tokio::test]
async fn security_ingest_cannot_publish_results() {
    let env = TestEnv::new("sec_ingest");
    if !secured(&env) {
        return;
    }
    let streams = env.connections.nats.streams.clone();
    insite_sinks::streams::ensure_streams(&env.jetstream().await, &streams)
        .await
        .unwrap();
    let ingest = env.connections_as(Role::Ingest);
    let js = insite_ingest::connect(&ingest.nats).await.unwrap();
    let config = PublisherConfig {
        ack_timeout: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(10),
        max_retries: 1,
        ..PublisherConfig::default()
    };

    // A result subject: NATS refuses it, the publisher reports it and the
    // run's error names it.
    let forbidden = streams.subject("insite.bars.1m.AAPL");
    let mut publisher = Publisher::new(js.clone(), streams.clone(), config.clone(), "test");
    publisher
        .publish(message(forbidden.clone(), "denied-1"))
        .await
        .unwrap();
    let err = publisher.flush().await.unwrap_err();
    assert!(
        matches!(err, insite_ingest::IngestError::Publish { ref subject, .. } if *subject == forbidden),
        "{err}"
    );
    let line = logs::wait_for(&[
        "NATS refused an operation",
        "Permissions Violation",
        &forbidden,
    ])
    .await;
    assert!(line.contains("insite-ingest"), "{line}");

    // The same connection goes on publishing raw input.
    let mut publisher = Publisher::new(js, streams.clone(), config, "test");
    publisher
        .publish(message(streams.subject("md.trades.AAPL"), "allowed-1"))
        .await
        .unwrap();
    let report = publisher.flush().await.unwrap();
    assert_eq!(report.acked, 1);
    let admin = env.jetstream().await;
    let mut derived = admin.get_stream(&streams.derived).await.unwrap();
    assert_eq!(derived.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn security_subscriber_reads_results_and_cannot_publish() {
    let env = TestEnv::new("sec_subscriber");
    if !secured(&env) {
        return;
    }
    let streams = &env.connections.nats.streams;
    let subject = streams.subject("insite.bars.1m.MSFT");
    let subscriber = env.connections_as(Role::Subscriber);
    let client = insite_sinks::nats::connect(&subscriber.nats, "insite-test-subscriber")
        .await
        .unwrap();
    let mut reads = client.subscribe(streams.subject("insite.>")).await.unwrap();
    client.flush().await.unwrap();
    let mut watch = env.subscribe(subject.clone()).await;

    // It reads what the pipeline publishes...
    let admin = env.nats().await;
    admin
        .publish(subject.clone(), "final".into())
        .await
        .unwrap();
    admin.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reads.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.payload[..], b"final");
    let got = watch.next().await.unwrap();
    assert_eq!(&got.payload[..], b"final");

    // ...and may publish nothing: the server drops it and says why.
    client
        .publish(subject.clone(), "forged".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let line = logs::wait_for(&[
        "insite-test-subscriber",
        "Permissions Violation for Publish",
        &subject,
    ])
    .await;
    assert!(line.starts_with("ERROR"), "{line}");
    let forged = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(
        forged.is_err(),
        "a subscriber's publish arrived: {forged:?}"
    );

    // Nor may it read raw input.
    let raw = streams.subject("md.trades.>");
    let _sub = client.subscribe(raw.clone()).await.unwrap();
    client.flush().await.unwrap();
    logs::wait_for(&[
        "insite-test-subscriber",
        "Permissions Violation for Subscription",
        &raw,
    ])
    .await;
}

/// Migrates this test's database as the pipeline's writer and returns the
/// connections of `role`.
async fn migrated(env: &TestEnv, role: Role) -> Connections {
    insite_sinks::clickhouse::migrate(&env.connections_as(Role::Pipeline).clickhouse)
        .await
        .unwrap();
    env.connections_as(role)
}

/// Redis refused a command under the user's ACL (`NOPERM`).
fn is_noperm(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
}

fn assert_readonly(result: Result<(), clickhouse::error::Error>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(exception_code(&err), Some(164), "{what}: {err}");
    assert_eq!(classify(&err), ErrorClass::BadData, "{what}: never retried");
    assert!(err.to_string().contains("readonly mode"), "{what}: {err}");
}

#[tokio::test]
async fn security_query_user_cannot_insert_or_drop() {
    let env = TestEnv::new("sec_ch_query");
    if !secured(&env) {
        return;
    }
    let query = migrated(&env, Role::Query).await;
    let client = insite_sinks::clickhouse::connect(&query.clickhouse);
    let rows: u64 = client
        .query("SELECT count() FROM bars")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 0, "the query user reads");
    assert_readonly(
        client
            .query("INSERT INTO late_events (symbol) VALUES ('X')")
            .execute()
            .await,
        "INSERT as the query user",
    );
    assert_readonly(
        client.query("DROP TABLE bars").execute().await,
        "DROP as the query user",
    );
    assert_readonly(
        client
            .query(&format!("DROP DATABASE {}", query.clickhouse.database))
            .execute()
            .await,
        "DROP DATABASE as the query user",
    );
    // insite's own writers refuse to go on as this user, with the code.
    let err = insite_sinks::clickhouse::migrate(&query.clickhouse)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("164") || err.to_string().contains("readonly"),
        "{err}"
    );
    let tables: u64 = env
        .clickhouse()
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'bars'")
        .bind(&query.clickhouse.database)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(tables, 1, "bars is still there");
}

#[tokio::test]
async fn security_analyst_cannot_write() {
    let env = TestEnv::new("sec_analyst");
    if !secured(&env) {
        return;
    }
    let analyst = migrated(&env, Role::Analyst).await;
    let client = insite_sinks::clickhouse::connect(&analyst.clickhouse);
    let rows: u64 = client
        .query("SELECT count() FROM trades")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 0, "the analyst reads");
    assert_readonly(
        client
            .query("INSERT INTO late_events (symbol) VALUES ('X')")
            .execute()
            .await,
        "INSERT as the analyst",
    );
    assert_readonly(
        client
            .query("CREATE TABLE mine (x UInt8) ENGINE = Memory")
            .execute()
            .await,
        "CREATE as the analyst",
    );
    assert_readonly(
        client.query("TRUNCATE TABLE trades").execute().await,
        "TRUNCATE as the analyst",
    );

    // In Redis the analyst reads and writes nothing.
    let key = format!("{}probe", analyst.redis.key_prefix);
    let mut admin = env.redis().await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut conn = insite_sinks::redis_conn::client(&analyst.redis)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "1");
    let err = redis::cmd("SET")
        .arg(&key)
        .arg("2")
        .query_async::<()>(&mut conn)
        .await
        .unwrap_err();
    assert!(is_noperm(&err), "{err}");
}

#[tokio::test]
async fn security_redis_reader_cannot_write() {
    let env = TestEnv::new("sec_redis_reader");
    if !secured(&env) {
        return;
    }
    // The query service's user reads and fills its cache (SET, ZADD,
    // EXPIRE under the prefix), nothing more.
    let query = env.connections_as(Role::Query);
    let prefix = &query.redis.key_prefix;
    let mut conn = insite_sinks::redis_conn::client(&query.redis)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let cached = format!("{prefix}cached");
    let _: () = redis::cmd("SET")
        .arg(&cached)
        .arg("json")
        .arg("NX")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    for (what, cmd) in [
        ("DEL", redis::cmd("DEL").arg(&cached).clone()),
        (
            "LPUSH",
            redis::cmd("LPUSH")
                .arg(format!("{prefix}l"))
                .arg("x")
                .clone(),
        ),
        (
            "HSET",
            redis::cmd("HSET")
                .arg(format!("{prefix}h"))
                .arg("f")
                .arg("x")
                .clone(),
        ),
        ("FLUSHDB", redis::cmd("FLUSHDB").clone()),
        (
            "SET outside the prefix",
            redis::cmd("SET").arg("elsewhere").arg("x").clone(),
        ),
    ] {
        let err = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .unwrap_err();
        assert!(is_noperm(&err), "{what}: {err}");
    }

    // insite's Redis sink run as a reader: the flush is refused with the
    // server's NOPERM, the sink keeps its updates for the next flush.
    let reader = env.connections_as(Role::Analyst);
    let mut sink = RedisSink::connect(&reader.redis, RedisSinkConfig::default())
        .await
        .unwrap();
    sink.push(HotUpdate::Bar(
        bar("AAPL", Interval::MINUTE, 1_700_000_040_000)
            .finality(Finality::Final)
            .build(),
    ))
    .unwrap();
    let err = sink.flush().await.unwrap_err();
    assert!(err.to_string().contains("no permissions"), "{err}");
    assert!(sink.pending() > 0, "the refused updates are kept");
}

#[tokio::test]
async fn security_wrong_passwords_are_refused() {
    let env = TestEnv::new("sec_wrong_password");
    if !secured(&env) {
        return;
    }
    let mut wrong = env.connections_as(Role::Pipeline);
    wrong.nats.password = Some("not-the-password".into());
    wrong.clickhouse.password = "not-the-password".into();
    wrong.redis.password = Some("not-the-password".into());

    let err = insite_sinks::nats::connect(&wrong.nats, "insite-test-wrong")
        .await
        .unwrap_err();
    assert_eq!(
        err.source.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
    let err = insite_ingest::connect(&wrong.nats).await.unwrap_err();
    assert!(err.to_string().contains("authorization violation"), "{err}");

    let err = insite_sinks::clickhouse::connect(&wrong.clickhouse)
        .query("SELECT 1")
        .execute()
        .await
        .unwrap_err();
    assert_eq!(exception_code(&err), Some(193), "{err}");
    assert_eq!(classify(&err), ErrorClass::BadData, "never retried: {err}");
    let err = insite_sinks::clickhouse::migrate(&wrong.clickhouse)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Wrong password"), "{err}");

    let err = RedisSink::connect(&wrong.redis, RedisSinkConfig::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");
    // Without any user, Redis refuses too: the default user is off.
    let mut anonymous = wrong.redis.clone();
    anonymous.user = None;
    anonymous.password = None;
    let mut conn = insite_sinks::redis_conn::client(&anonymous)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let err = redis::cmd("GET")
        .arg("x")
        .query_async::<Option<String>>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}

#[tokio::test]
async fn security_pipeline_with_a_read_only_redis_user_logs_the_refusal_and_goes_on() {
    let env = TestEnv::new("sec_pipeline_redis");
    if !secured(&env) {
        return;
    }
    // The pipeline's own users, but Redis as the read-only analyst.
    let mut connections = env.connections_as(Role::Pipeline);
    let reader = env.connections_as(Role::Analyst).redis;
    connections.redis.user = reader.user;
    connections.redis.password = reader.password;
    let config = insite_testkit::pipeline::config(&env.id);
    let through = insite_testkit::pipeline::publish_recorded(&env).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let run = insite_pipeline::RunConfig::new(connections, config.clone());
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move { insite_pipeline::run(&run, stop).await })
    };
    // Every Redis flush is refused and logged; the durable results (and so
    // the acknowledgements) go on regardless.
    let line = logs::wait_for(&["Redis flush failed", "no permissions"]).await;
    assert!(line.starts_with("WARN"), "{line}");
    insite_testkit::results::wait_durable(&env.connections.clickhouse, &config.name, through).await;
    assert!(!task.is_finished(), "the pipeline is still running");
    stop.cancel();
    task.await.unwrap().unwrap();
}
