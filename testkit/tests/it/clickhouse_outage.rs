//! ClickHouse outages against the harness's real server: a silent server
//! times out, errors are classified by code (not by words in the message),
//! a server that is gone is retryable, and migrations wait for a server that
//! is not up yet.
//!
//! The shared server is never stopped here (other tests use it): a server
//! that goes away is a TCP proxy in front of it that is stopped instead.

use std::time::Duration;

use insite_schemas::config::ClickHouseConfig;
use insite_sinks::clickhouse::{
    classify, client_without_database, connect, exception_code, is_timeout, migrate,
    server_version, ErrorClass,
};
use insite_testkit::TestEnv;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous: only a hang (the defect) exceeds it.
const HANG: Duration = Duration::from_secs(30);

/// A server that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

/// `host:port` of an `http://host:port` URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// A port nothing listens on (yet).
pub(crate) fn free_port() -> u16 {
    insite_local::free_ports(1).unwrap()[0]
}

/// Forwards every connection to `port` to the real server at `upstream`
/// (`http://host:port`) until aborted; aborting it closes its connections,
/// as a stopped server would.
pub(crate) async fn proxy(port: u16, upstream: &str) -> JoinHandle<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let upstream = host_port(upstream);
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test]
async fn a_silent_server_times_out_instead_of_hanging() {
    let config = ClickHouseConfig {
        url: silent_server().await,
        connect_timeout_ms: 200,
        request_timeout_ms: 300,
        ..ClickHouseConfig::default()
    };
    let client = connect(&config);
    let answer = tokio::time::timeout(HANG, server_version(&client))
        .await
        .expect("a request to a silent server must time out, not hang");
    let err = answer.expect_err("a silent server answers nothing");
    assert!(is_timeout(&err), "{err:?}");
    assert_eq!(classify(&err), ErrorClass::Retryable, "{err}");
}

#[tokio::test]
async fn refused_statements_are_classified_by_their_code() {
    let env = TestEnv::new("ch_refused");
    let client = client_without_database(&env.connections.clickhouse);
    // The text holds "503": formerly retried as if the server were down.
    let syntax = client
        .query("SELEC 503")
        .execute()
        .await
        .expect_err("not SQL");
    assert_eq!(exception_code(&syntax), Some(62), "{syntax}");
    assert_eq!(classify(&syntax), ErrorClass::BadData, "{syntax}");
    let unknown = client
        .query("SELECT 1 FROM no_such_database_503.t")
        .execute()
        .await
        .expect_err("no such database");
    assert_eq!(exception_code(&unknown), Some(81), "{unknown}");
    assert_eq!(classify(&unknown), ErrorClass::BadData, "{unknown}");
}

#[tokio::test]
async fn a_server_that_is_gone_is_retryable() {
    let env = TestEnv::new("ch_gone");
    let port = free_port();
    let running = proxy(port, &env.connections.clickhouse.url).await;
    let via_proxy = ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..env.connections.clickhouse.clone()
    };
    let client = client_without_database(&via_proxy);
    server_version(&client).await.expect("up through the proxy");
    running.abort();
    let _ = running.await;
    let err = tokio::time::timeout(HANG, server_version(&client))
        .await
        .expect("a stopped server fails the call")
        .expect_err("the server is gone");
    assert_eq!(classify(&err), ErrorClass::Retryable, "{err:?}");
}

#[tokio::test]
async fn migrations_wait_for_a_server_that_is_not_up_yet() {
    let env = TestEnv::new("ch_late");
    let port = free_port();
    let late = ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..env.connections.clickhouse.clone()
    };
    let migrating = tokio::spawn(async move { migrate(&late).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    if migrating.is_finished() {
        panic!(
            "migrate gave up while ClickHouse was down: {:?}",
            migrating.await
        );
    }
    let _proxy = proxy(port, &env.connections.clickhouse.url).await;
    let report = tokio::time::timeout(Duration::from_secs(60), migrating)
        .await
        .expect("migrate finishes once ClickHouse is up")
        .unwrap()
        .unwrap();
    assert!(!report.applied.is_empty());
}

/// Two processes of a cluster migrate the same database at start-up.
#[tokio::test]
#[ignore = "known race: migration 3 (0003_trades_key.sql) renames tables, so two \
            concurrent migrate() runs on one database can fail with Code 57 or 60"]
async fn concurrent_migrations_both_succeed() {
    let env = TestEnv::new("ch_concurrent");
    let (a, b) = tokio::join!(
        migrate(&env.connections.clickhouse),
        migrate(&env.connections.clickhouse)
    );
    if let Err(e) = &a {
        panic!("a: {e:?} / {}", insite_sinks::retry::error_chain(e));
    }
    if let Err(e) = &b {
        panic!("b: {e:?} / {}", insite_sinks::retry::error_chain(e));
    }
}
